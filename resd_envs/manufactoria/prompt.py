"""The prompt shown to the model: our own description of the DSL, correct about every rule the
verifier enforces, followed by the problem's criteria.

Compared with DELTA's prompt this one fixes the points its verifier contradicts: only the lowercase
target ``end`` accepts (``END`` as a target rejects); the example's behaviour is described truthfully;
blocks may come in any order; a puller leaves a symbol of the other pair on the tape and takes
``[EMPTY]``; robots get at most 1000 steps. Changing this text changes the task set: bump the version.
"""

from __future__ import annotations

DSL_GUIDE = """\
# Manufactoria factories

You program a factory that sorts robots. Every robot carries a tape: a string of coloured symbols
R (red), B (blue), Y (yellow) and G (green), possibly empty. The robot enters at the node `start`,
moves from node to node, and is ACCEPTED if it reaches the node `end`. It is REJECTED if it is sent
to `NONE`, or if it is still travelling after 1000 steps (an endless loop).

## Nodes

A program is a list of node blocks, in any order. A block is a header line `TYPE id:` followed by its
route lines, each indented by at least four spaces or a tab. Node ids are letters, digits and
underscores and must be unique.

    START start:          # exactly one, with id `start` and one route
        NEXT first_node

    PULLER_RB id:         # reads the FRONT symbol if it is R or B
        [R] node_if_red
        [B] node_if_blue
        [EMPTY] node_if_neither

    PULLER_YG id:         # reads the FRONT symbol if it is Y or G
        [Y] node_if_yellow
        [G] node_if_green
        [EMPTY] node_if_neither

    PAINTER_RED id:       # also PAINTER_BLUE, PAINTER_YELLOW, PAINTER_GREEN
        NEXT next_node    # appends R (B, Y, G) at the END of the tape

    END end               # exactly one, id `end`, no colon, no routes

How a puller works:
- If the front symbol belongs to its pair (R/B for PULLER_RB, Y/G for PULLER_YG), the symbol is
  removed from the tape and the robot follows the branch of that colour.
- If the tape is empty, or the front symbol belongs to the other pair, nothing is removed and the
  robot follows the `[EMPTY]` branch. So a PULLER_RB never removes Y or G: test the front symbol with
  both puller types when all four colours can appear.
- A branch you leave out sends the robot to `NONE` (rejected). The first line for a colour wins.

## Rules

1. Route targets are node ids, `end` (accept) or `NONE` (reject). Write `end` in lowercase:
   `END` as a target is not the end node and rejects the robot.
2. Colours are uppercase: `[R]`, `[B]`, `[Y]`, `[G]`, `[EMPTY]`, with a space before the target.
3. Every node except END needs the colon after its id; START and painters have exactly one `NEXT`.
4. Comments start with `#`, on their own line or after a line's content. Blank lines are ignored.
5. Each step through a node counts (START included), so at most 999 nodes can run before `end`.
   Reading a symbol costs one step per puller it passes through.
6. Put the final program in one fenced block that opens with ```manufactoria on its own line and
   closes with ```. Only the LAST such block in your answer is graded.

## Example

This factory accepts every tape whose first symbol is R (the rest of the tape is never read) and
rejects all others:

```manufactoria
START start:
    NEXT first

PULLER_RB first:
    [R] end

END end
```

A tape starting with B has no [B] branch, and a tape starting with Y or G (or an empty tape) has no
[EMPTY] branch, so those robots go to NONE.
"""


def build_prompt(criteria: str) -> str:
    """The full user message for a problem whose task sentence is ``criteria``."""
    return f"{DSL_GUIDE}\n# Your task\n\nDesign a factory for this rule:\n\n{criteria}\n"
