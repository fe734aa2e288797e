"""MLflow behind one small service, and the loop's epoch callback that records to it."""
