"""Local stand-ins for third-party services the suites cannot reach (see DESIGN.md, Tests)."""
