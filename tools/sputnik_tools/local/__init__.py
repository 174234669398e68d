"""The local stack: template.yaml stood up in moto, in one process, with no Docker and no AWS account."""
