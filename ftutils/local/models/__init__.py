"""The local backend's base models: the one table of their facts (`catalog`), OpenAI's ids as
aliases of them (`aliases`), every id the server answers to (`registry`), and loading them
offline (`loading`, through the conversion `cache` and the transformers shims of `compat`).
`chat_format` turns chats into a model's tokens and back.

Imports nothing else of `ftutils.local`; `catalog`, `aliases` and `registry` load no torch.
"""
