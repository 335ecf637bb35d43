"""dvc-rehearsal: load tests and cutover rehearsals for a province moving onto the
National Public Service Portal.

The package is a library first (plan, wards, catalogue, ledger, runner, report,
gates) with a thin CLI on top (`rehearse`). The reference portal lives in
`rehearsal.portal`. Files that ops teams edit (scenarios, config) live beside the
package in the checkout; `PROJECT_ROOT` finds them.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The checkout the package runs from. The harness is installed editable
#: (`pip install -e .`) so that `scenarios/`, `config/`, `locustfiles/` and
#: `reports/` stay ordinary files an ops team edits and commits.
PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
CONFIG_DIR: Path = PROJECT_ROOT / "config"
SCENARIOS_DIR: Path = PROJECT_ROOT / "scenarios"
LOCUSTFILES_DIR: Path = PROJECT_ROOT / "locustfiles"
REPORTS_DIR: Path = PROJECT_ROOT / "reports"
#: Stored baselines (`rehearse baseline save`): small JSON files meant to be committed.
BASELINES_DIR: Path = PROJECT_ROOT / "baselines"
