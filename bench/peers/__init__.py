"""The peers' apps: one module per library, each started with that library's own worker CLI."""
