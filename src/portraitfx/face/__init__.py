"""Face analysis: detection, mesh, pose, alignment, regions, identity, tracking."""
