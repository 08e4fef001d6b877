"""Serializes ast.parse across threads in the fuzzer's interpreter.

CPython 3.11 keeps the AST constructor's recursion depth in state shared by every thread: when
a garbage-collection pass run by one thread's parse lets another thread parse in between, the
first one fails with "SystemError: AST constructor recursion depth mismatch" (python/cpython
gh-106905, fixed in later versions). Hypothesis parses its own sources to describe lambdas while
schemathesis generates examples on two worker threads, and that SystemError surfaced as
"Inconsistent results" for one operation now and then, failing a run the server had passed.
Installed by tests/fuzz/api with a .pth line, so it is imported at every start of the venv's
interpreter.
"""

import ast
import functools
import threading

_lock = threading.Lock()
_parse = ast.parse


@functools.wraps(_parse)
def _serialized_parse(*args, **kwargs):
    with _lock:
        return _parse(*args, **kwargs)


ast.parse = _serialized_parse
