"""The MODEST release: its layout, the stored zip, sources, the scene index, the Dataset."""
