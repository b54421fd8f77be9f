"""Replay `context.drop_template_echo` as it is now on the stored reflection records of every run under
results/learning_cpu that dropped echoes, and print the runs where a drop decision would change.

Run from the repository root: `python results/learning_cpu/prompt_layout_zen4/echo_replay.py`.
"""
import glob
import gzip
import json
import os

import yaml

from resd_learner.context.echo import reflection_is_echo
changed = runs = 0
for run in sorted(set(p.rsplit('/records/', 1)[0] for p in glob.glob('results/learning_cpu/**/records/step_*.jsonl.gz', recursive=True))):
    cfg = yaml.safe_load(open(f'{run}/config.yaml')) if os.path.exists(f'{run}/config.yaml') else {}
    if not (cfg.get('context') or {}).get('drop_template_echo'):
        continue
    runs += 1
    newly = unflagged = total = 0
    for path in sorted(glob.glob(f'{run}/records/step_*.jsonl.gz')):
        for line in gzip.open(path, 'rt'):
            r = json.loads(line)
            if r.get('kind') != 'reflection' or r.get('error'):
                continue
            total += 1
            old, new = bool(r.get('template_echo', False)), reflection_is_echo(r['text'])
            newly += new and not old
            unflagged += old and not new
    if newly or unflagged:
        changed += 1
        print(f'{run}: {newly} newly dropped, {unflagged} no longer dropped, of {total}')
print(f'{changed} of {runs} runs with drop_template_echo change')
