"""The kind of value each FiNER-139 tag measures, and the rule FinerMini states when a wrong answer's kind differs.

FinerMini's optional kind feedback (``make("resd/FinerMini-v0", wrong_feedback="kind")``) adds to a
wrong answer's feedback a general rule, when the chosen tag measures another kind of value than the
gold tag: ``A percentage or rate needs a rate or percentage tag, not a money-amount tag.`` The rule
names kinds, never a tag, so it holds for every task and can become a playbook lesson; it reveals the
kind of the expected tag (a hint), not the tag.

Kinds follow the US-GAAP taxonomy's item types of the tags (monetary, percent, shares, per-share,
duration, date, area, plain counts); :data:`TAG_KINDS` lists all 139 FiNER-139 labels. In the shipped
FinerMini data the sentence agrees with the gold tag's kind: amounts of money are written
``$ X million``, percentages ``X %``, durations ``X years``, share counts ``X shares`` (checked by
``tests/resd_envs/finer_mini/test_kinds.py``). About two thirds of the distractors measure another kind
than their task's gold tag.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValueKind:
    """One kind of value: ``noun`` names the value ("a number of shares"), ``tags`` the tags for it
    ("a share-count tag")."""

    key: str
    noun: str
    tags: str


#: Every kind, by key.
KINDS: dict[str, ValueKind] = {kind.key: kind for kind in (
    ValueKind("money", "an amount of money", "a money-amount tag"),
    ValueKind("percent", "a percentage or rate", "a rate or percentage tag"),
    ValueKind("shares", "a number of shares", "a share-count tag"),
    ValueKind("per_share", "a price or amount per share", "a per-share tag"),
    ValueKind("duration", "a length of time", "a period, term or useful-life tag"),
    ValueKind("count", "a count of items other than shares", "an item-count tag"),
    ValueKind("date", "a date", "a date tag"),
    ValueKind("area", "an area", "an area tag"),
)}

#: FiNER-139 label -> key of :data:`KINDS` (the label's US-GAAP item type).
TAG_KINDS: dict[str, str] = {
    # money
    "AccrualForEnvironmentalLossContingencies": "money",
    "AllocatedShareBasedCompensationExpense": "money",
    "AmortizationOfFinancingCosts": "money",
    "AmortizationOfIntangibleAssets": "money",
    "AssetImpairmentCharges": "money",
    "BusinessCombinationAcquisitionRelatedCosts": "money",
    "BusinessCombinationConsiderationTransferred1": "money",
    "BusinessCombinationContingentConsiderationLiability": "money",
    "BusinessCombinationRecognizedIdentifiableAssetsAcquiredAndLiabilitiesAssumedIntangibleAssetsOtherThanGoodwill": "money",
    "BusinessCombinationRecognizedIdentifiableAssetsAcquiredAndLiabilitiesAssumedIntangibles": "money",
    "CapitalizedContractCostAmortization": "money",
    "CashAndCashEquivalentsFairValueDisclosure": "money",
    "ContractWithCustomerLiability": "money",
    "ContractWithCustomerLiabilityRevenueRecognized": "money",
    "CumulativeEffectOfNewAccountingPrincipleInPeriodOfAdoption": "money",
    "DebtInstrumentCarryingAmount": "money",
    "DebtInstrumentFaceAmount": "money",
    "DebtInstrumentFairValue": "money",
    "DebtInstrumentUnamortizedDiscount": "money",
    "DeferredFinanceCostsGross": "money",
    "DeferredFinanceCostsNet": "money",
    "DefinedBenefitPlanContributionsByEmployer": "money",
    "DefinedContributionPlanCostRecognized": "money",
    "Depreciation": "money",
    "DerivativeNotionalAmount": "money",
    "DisposalGroupIncludingDiscontinuedOperationConsideration": "money",
    "EmployeeServiceShareBasedCompensationNonvestedAwardsTotalCompensationCostNotYetRecognized": "money",
    "EmployeeServiceShareBasedCompensationNonvestedAwardsTotalCompensationCostNotYetRecognizedShareBasedAwardsOtherThanOptions": "money",
    "EmployeeServiceShareBasedCompensationTaxBenefitFromCompensationExpense": "money",
    "EquityMethodInvestments": "money",
    "GainsLossesOnExtinguishmentOfDebt": "money",
    "Goodwill": "money",
    "GoodwillImpairmentLoss": "money",
    "GuaranteeObligationsMaximumExposure": "money",
    "IncomeLossFromEquityMethodInvestments": "money",
    "IncomeTaxExpenseBenefit": "money",
    "InterestExpense": "money",
    "InterestExpenseDebt": "money",
    "LeaseAndRentalExpense": "money",
    "LettersOfCreditOutstandingAmount": "money",
    "LineOfCredit": "money",
    "LineOfCreditFacilityCurrentBorrowingCapacity": "money",
    "LineOfCreditFacilityMaximumBorrowingCapacity": "money",
    "LineOfCreditFacilityRemainingBorrowingCapacity": "money",
    "LongTermDebt": "money",
    "LongTermDebtFairValue": "money",
    "LossContingencyAccrualAtCarryingValue": "money",
    "LossContingencyDamagesSoughtValue": "money",
    "LossContingencyEstimateOfPossibleLoss": "money",
    "OperatingLeaseCost": "money",
    "OperatingLeaseExpense": "money",
    "OperatingLeaseLiability": "money",
    "OperatingLeasePayments": "money",
    "OperatingLeaseRightOfUseAsset": "money",
    "OperatingLeasesRentExpenseNet": "money",
    "OperatingLossCarryforwards": "money",
    "PaymentsToAcquireBusinessesGross": "money",
    "PaymentsToAcquireBusinessesNetOfCashAcquired": "money",
    "ProceedsFromIssuanceOfCommonStock": "money",
    "PublicUtilitiesRequestedRateIncreaseDecreaseAmount": "money",
    "RelatedPartyTransactionAmountsOfTransaction": "money",
    "RelatedPartyTransactionExpensesFromTransactionsWithRelatedParty": "money",
    "RepaymentsOfDebt": "money",
    "RestructuringAndRelatedCostExpectedCost1": "money",
    "RestructuringCharges": "money",
    "RevenueFromContractWithCustomerExcludingAssessedTax": "money",
    "RevenueFromContractWithCustomerIncludingAssessedTax": "money",
    "RevenueFromRelatedParties": "money",
    "RevenueRemainingPerformanceObligation": "money",
    "Revenues": "money",
    "ShareBasedCompensation": "money",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardEquityInstrumentsOtherThanOptionsVestedInPeriodTotalFairValue": "money",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardOptionsExercisesInPeriodTotalIntrinsicValue": "money",
    "StockRepurchaseProgramAuthorizedAmount1": "money",
    "StockRepurchaseProgramRemainingAuthorizedRepurchaseAmount1": "money",
    "SupplementalInformationForPropertyCasualtyInsuranceUnderwritersPriorYearClaimsAndClaimsAdjustmentExpense": "money",
    "TreasuryStockValueAcquiredCostMethod": "money",
    "UnrecognizedTaxBenefits": "money",
    "UnrecognizedTaxBenefitsThatWouldImpactEffectiveTaxRate": "money",
    # percent
    "BusinessAcquisitionPercentageOfVotingInterestsAcquired": "percent",
    "ConcentrationRiskPercentage1": "percent",
    "DebtInstrumentBasisSpreadOnVariableRate1": "percent",
    "DebtInstrumentInterestRateEffectivePercentage": "percent",
    "DebtInstrumentInterestRateStatedPercentage": "percent",
    "DebtInstrumentRedemptionPricePercentage": "percent",
    "DebtWeightedAverageInterestRate": "percent",
    "DerivativeFixedInterestRate": "percent",
    "EffectiveIncomeTaxRateContinuingOperations": "percent",
    "EffectiveIncomeTaxRateReconciliationAtFederalStatutoryIncomeTaxRate": "percent",
    "EquityMethodInvestmentOwnershipPercentage": "percent",
    "LineOfCreditFacilityCommitmentFeePercentage": "percent",
    "LineOfCreditFacilityInterestRateAtPeriodEnd": "percent",
    "LineOfCreditFacilityUnusedCapacityCommitmentFeePercentage": "percent",
    "MinorityInterestOwnershipPercentageByNoncontrollingOwners": "percent",
    "MinorityInterestOwnershipPercentageByParent": "percent",
    "OperatingLeaseWeightedAverageDiscountRatePercent": "percent",
    "PreferredStockDividendRatePercentage": "percent",
    "SharebasedCompensationArrangementBySharebasedPaymentAwardAwardVestingRightsPercentage": "percent",
    # shares
    "AntidilutiveSecuritiesExcludedFromComputationOfEarningsPerShareAmount": "shares",
    "BusinessAcquisitionEquityInterestsIssuedOrIssuableNumberOfSharesIssued": "shares",
    "CommonStockCapitalSharesReservedForFutureIssuance": "shares",
    "CommonStockSharesAuthorized": "shares",
    "CommonStockSharesOutstanding": "shares",
    "PreferredStockSharesAuthorized": "shares",
    "SaleOfStockNumberOfSharesIssuedInTransaction": "shares",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardEquityInstrumentsOtherThanOptionsGrantsInPeriod": "shares",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardEquityInstrumentsOtherThanOptionsNonvestedNumber": "shares",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardNumberOfSharesAuthorized": "shares",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardNumberOfSharesAvailableForGrant": "shares",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardOptionsGrantsInPeriodGross": "shares",
    "StockIssuedDuringPeriodSharesNewIssues": "shares",
    "StockRepurchasedAndRetiredDuringPeriodShares": "shares",
    "StockRepurchasedDuringPeriodShares": "shares",
    "TreasuryStockSharesAcquired": "shares",
    # per_share
    "ClassOfWarrantOrRightExercisePriceOfWarrantsOrRights1": "per_share",
    "CommonStockDividendsPerShareDeclared": "per_share",
    "CommonStockParOrStatedValuePerShare": "per_share",
    "DebtInstrumentConvertibleConversionPrice1": "per_share",
    "SaleOfStockPricePerShare": "per_share",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardEquityInstrumentsOtherThanOptionsGrantsInPeriodWeightedAverageGrantDateFairValue": "per_share",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardOptionsGrantsInPeriodWeightedAverageGrantDateFairValue": "per_share",
    "SharePrice": "per_share",
    "TreasuryStockAcquiredAverageCostPerShare": "per_share",
    # duration
    "AcquiredFiniteLivedIntangibleAssetsWeightedAverageUsefulLife": "duration",
    "DebtInstrumentTerm": "duration",
    "EmployeeServiceShareBasedCompensationNonvestedAwardsTotalCompensationCostNotYetRecognizedPeriodForRecognition1": "duration",
    "FiniteLivedIntangibleAssetUsefulLife": "duration",
    "LesseeOperatingLeaseRenewalTerm": "duration",
    "LesseeOperatingLeaseTermOfContract": "duration",
    "OperatingLeaseWeightedAverageRemainingLeaseTerm1": "duration",
    "PropertyPlantAndEquipmentUsefulLife": "duration",
    "ShareBasedCompensationArrangementByShareBasedPaymentAwardAwardVestingPeriod1": "duration",
    "SharebasedCompensationArrangementBySharebasedPaymentAwardExpirationPeriod": "duration",
    # count
    "LossContingencyPendingClaimsNumber": "count",
    "NumberOfOperatingSegments": "count",
    "NumberOfRealEstateProperties": "count",
    "NumberOfReportableSegments": "count",
    # date
    "DebtInstrumentMaturityDate": "date",
    # area
    "AreaOfRealEstateProperty": "area",
}


def kind_of(tag: str) -> ValueKind | None:
    """The kind of value ``tag`` measures (``None`` for a tag outside FiNER-139)."""
    key = TAG_KINDS.get(tag)
    return None if key is None else KINDS[key]


def kind_rule(gold: str, answered: str) -> str:
    """The rule a wrong answer ``answered`` broke when it measures another kind than ``gold``, as one
    sentence (``""`` when the kinds agree or either tag is unknown)."""
    want, got = kind_of(gold), kind_of(answered)
    if want is None or got is None or want == got:
        return ""
    return f"{want.noun[0].upper()}{want.noun[1:]} needs {want.tags}, not {got.tags}."
