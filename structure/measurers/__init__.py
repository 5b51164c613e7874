from structure.measurers.quad_measurer import QuadMeasurer  # noqa: F401
