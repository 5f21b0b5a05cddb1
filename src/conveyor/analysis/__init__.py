"""Analysis of what the store holds: failure groups, backlog predictions (used by the
CLI, the dashboard and alerting alike)."""
