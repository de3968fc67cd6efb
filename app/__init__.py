"""The outer layer: settings, HTTP app, CLI, Postgres (pool, migrations, trace sink), embedded defaults."""
