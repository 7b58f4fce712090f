"""Preparing fine-tuning data: load raw tables, convert them to OpenAI's chat format,
validate files the way OpenAI does, count tokens offline, advise, de-duplicate, price and split.

Modules are imported on demand (`from ftutils.data import validate`), so loading the
package does not pull pandas or tiktoken into a process that only needs one of them.
"""
