"""The ``pladis evaluate`` and ``pladis benchmark`` commands (light modules: heavy imports in ``run``)."""
