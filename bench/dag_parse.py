"""Parse every DAG file the way the DAG processor does and print the durations as JSON.

python -m bench.dag_parse
"""

from __future__ import annotations

import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(REPO / "dags"))
    seconds = time.perf_counter() - started
    files = {Path(s.file).name: s.duration.total_seconds() for s in bag.dagbag_stats}
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "sum_file_seconds": round(sum(files.values()), 3),
                "dags": len(bag.dags),
                "import_errors": len(bag.import_errors),
                "files": files,
            }
        )
    )


if __name__ == "__main__":
    main()
