"""Actions: what an agent can *do* on a call, not only say.

For now, tools: declared once (`tools.py`) and called only through a policy gateway
(`gateway.py`) that checks the agent may use the tool, validates the arguments, keeps
a budget and a rate, bounds the time and audits every call, because an LLM must never
reach a production API directly. Flows and hand-off to a human come later, here.

It sits beside `knowledge/` (neither imports the other): both feed replies through
the pipeline's tool interface (`pipeline.context.ToolContextProvider`), and the
pipeline imports neither; the session runtime wires them into a call.
"""

from callwright.actions import builtin as _builtin  # noqa: F401  (registers the built-ins)
