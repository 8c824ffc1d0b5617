"""``fastsoftmax bench``: backends and peers side by side on scaled-up spirals.

The engine behind the ``bench`` command. Importing this package imports none
of the peers' libraries (scikit-learn, PyTorch, JAX), matplotlib or tqdm: each
is imported when a run needs it.

``run_bench(BenchConfig(...))`` returns the JSON-ready result the command
writes with ``--json``; ``plot_result(result, path)`` draws it. See
``docs/benchmarks.md`` for the definitions of every number.
"""

from ._cli import add_bench_parser
from ._engine import SCHEMA, TOL, BenchConfig, measure, run_bench
from ._report import format_block, format_footer, format_header, plot_result, write_json
from ._rows import OPS, PEERS, BackendRow, BenchData, Row, make_data, make_row

__all__ = ["OPS", "PEERS", "SCHEMA", "TOL", "BackendRow", "BenchConfig", "BenchData", "Row",
           "add_bench_parser", "format_block", "format_footer", "format_header", "make_data",
           "make_row", "measure", "plot_result", "run_bench", "write_json"]
