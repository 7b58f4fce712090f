"""Every code the validator reports, with its severity and the usual fix.

One catalogue, so codes stay stable (tests, the server's job errors and notebooks key on
them) and a reader sees at a glance what is checked. Errors are what OpenAI would reject or
what would make training wrong; warnings are worth a look but do not stop a job.
"""
from __future__ import annotations

# code -> (severity, fix).
CODES = {
    # the file as a whole
    "empty_file": ("error", "The file has no examples; write one JSON object per line."),
    "binary_file": ("error", "Export the data as JSONL (one JSON object per line, UTF-8)."),
    "not_utf8": ("error", "Save the file as UTF-8."),
    "not_jsonl": ("error", "Convert the data with ftutils.data.convert and write it with write_jsonl()."),
    "too_few_examples": ("error", "OpenAI needs at least 10 examples; 50-100 good ones usually help."),
    "mixed_formats": ("error", "Put each training method's examples in its own file."),
    "wrong_format": ("error", "Use a file in the format of the job's method, or change the method."),
    "nothing_to_train": ("error", "Give at least one assistant message weight 1 (the default); the trainer "
                                  "skips examples with nothing to learn, and would have none left."),
    "approximate_token_count": ("warning", None),
    # decoding one line
    "invalid_utf8": ("error", "Save the file as UTF-8."),
    "invalid_json": ("error", "Each line must be one complete JSON object."),
    "invalid_unicode": ("error", "Remove the unpaired \\ud800-\\udfff escape (a cut emoji?) or write the character itself."),
    "not_an_object": ("error", "Each line must be a JSON object like {\"messages\": [...]}."),
    "blank_line": ("warning", "Remove empty lines."),
    # the line's shape
    "missing_messages": ("error", "Each line needs a \"messages\" list (or \"input\" plus preferred/non-preferred outputs)."),
    "legacy_prompt_completion": ("error", "Convert with ftutils.data.convert.from_prompt_completion()."),
    "unrecognized_key": ("warning", "Write files with write_jsonl(strict=True), which drops extra keys."),
    "invalid_type": ("error", None),
    "empty_messages": ("error", "Give each example at least one user and one assistant message."),
    # messages
    "message_not_object": ("error", "Each message is an object like {\"role\": \"user\", \"content\": \"...\"}."),
    "missing_role": ("error", "Add \"role\" (system, user, assistant, tool)."),
    "unknown_role": ("error", None),
    "unrecognized_message_key": ("error", "Remove the key; only the keys of OpenAI's message schema are allowed."),
    "missing_content": ("error", "Give the message a non-empty \"content\" string."),
    "invalid_content": ("error", None),
    "empty_content": ("error", "Fill in the content or drop the example."),
    "whitespace_content": ("warning", "Fill in the content or drop the example."),
    "special_token": ("error", "Remove the special token from the text; the model's own tokens must not appear in data."),
    "invalid_weight": ("error", "Use weight 0 (do not train on this message) or 1 (train on it)."),
    "weight_not_on_assistant": ("error", "Only assistant messages take a weight; remove it."),
    "no_trained_tokens": ("warning", "Every assistant message has weight 0, so nothing is learned from this example."),
    # tools and functions
    "invalid_tools": ("error", None),
    "invalid_tool_call": ("error", None),
    "tool_calls_without_tools": ("error", "List the functions the assistant calls in the example's \"tools\"."),
    "function_call_without_functions": ("error", "List the function in the example's \"functions\"."),
    "unknown_tool": ("error", "Call only functions defined in the example's \"tools\"."),
    "missing_function_name": ("error", "Give the function message the \"name\" of the function it answers."),
    "missing_tool_call_id": ("error", "A tool message answers a call: give its \"tool_call_id\"."),
    "unknown_tool_call_id": ("warning", "Match tool_call_id to the id of an earlier assistant tool call."),
    # conversation order
    "missing_assistant_message": ("error", "Add the assistant reply the model should learn."),
    "last_message_not_assistant": ("warning", "End with the assistant reply; trailing messages are not trained on."),
    "system_not_first": ("warning", "Put the system message first."),
    "assistant_first": ("warning", "Start with a user message (after the optional system message)."),
    "consecutive_roles": ("warning", "Alternate user and assistant turns; merge the two messages."),
    # preference (DPO)
    "conflicting_keys": ("error", "Use one spelling: preferred_output/non_preferred_output."),
    "missing_input": ("error", "Give the prompt as \"input\": {\"messages\": [...]}."),
    "missing_preferred_output": ("error", "Add the preferred reply as a list with one assistant message."),
    "missing_non_preferred_output": ("error", "Add the rejected reply as a list with one assistant message."),
    "invalid_preferred_output": ("error", "Give exactly one assistant message in the list."),
    "identical_preference": ("warning", "Preferred and non-preferred replies are the same; nothing to learn."),
    # tokens (filled by the validator)
    "over_token_limit": ("warning", "OpenAI truncates from the end; see ftutils.data.tokens.truncation_preview()."),
}
