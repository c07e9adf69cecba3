"""The rating service: BentoML over assay's raters (see ``serve.service``).

``import serve`` imports no BentoML, torch or model: the service class is built when
``serve.service.AssayService`` is first accessed (``assay serve`` / ``bentoml serve``).
"""
