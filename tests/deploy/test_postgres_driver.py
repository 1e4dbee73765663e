"""The instance on Kubernetes lives in PostgreSQL: the URL dagster-postgres builds must find an installed driver.

SQLAlchemy 2.1 maps a plain ``postgresql://`` URL to psycopg 3, while dagster-postgres only brings psycopg2:
without psycopg 3 in the k8s extra every run/event-storage connection fails with ModuleNotFoundError
(found by `make k8s-e2e`).
"""

import sqlalchemy
from dagster_postgres.utils import get_conn_string


def test_dagster_postgres_url_resolves_to_an_installed_driver():
    url = get_conn_string("dagster", "secret", "127.0.0.1", "dagster")
    engine = sqlalchemy.create_engine(url)  # imports the dialect's DBAPI; no connection is made
    try:
        assert engine.dialect.loaded_dbapi is not None, f"no DB driver for {url.split('@')[-1]}"
    finally:
        engine.dispose()
