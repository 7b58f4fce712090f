"""ftutils: fine-tune LLMs through OpenAI's fine-tuning API, or offline on a local backend that speaks it."""

__version__ = "0.1.0"
