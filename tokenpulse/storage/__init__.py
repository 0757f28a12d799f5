"""ClickHouse storage: schema, writer and queries."""
