"""The OpenAI-compatible HTTP API: `app.create_app(settings)`, the bearer key (`auth`), errors and
response headers in OpenAI's shapes (`errors`, `headers`), the body limit (`limits`), the schemas
(mirroring openai-python's types), and thin `routes` over the services: the store, the model
registry, the inference engine and the worker process. Requests are shaped for those services
by `uploads`, `job_requests` and `completions`. Only `ftutils.local.cli` imports it.
"""
