"""Which store errors blame the rows written (a retry cannot fix them), for both backends."""

from __future__ import annotations

import struct

# ClickHouse error codes that blame the data written, not the server: TYPE_MISMATCH,
# CANNOT_PARSE_*, ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE, INCORRECT_DATA,
# TOO_LARGE_STRING_SIZE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
DATA_ERROR_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 321})
# raised while rows are turned into a request, before anything reaches the server
CLIENT_DATA_ERRORS: tuple[type[BaseException], ...] = (
    OverflowError,
    TypeError,
    ValueError,
    UnicodeError,
    struct.error,
)
