"""Node-side tests (launch planning)."""
