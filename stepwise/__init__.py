"""stepwise: a reasoning-orchestration API server. Installed, its packages are stepwise.app, stepwise.reasoning,
stepwise.tools, stepwise.verifiers, stepwise.evals and stepwise.migrations; in the repository they are the top-level
folders of those names (pyproject.toml's package-dir; the symlinks beside this file let type checkers and editors
read the tree under the same names)."""
