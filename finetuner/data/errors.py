"""The one exception type of ``finetuner.data``."""


class DataError(ValueError):
    """Data that cannot be used as given: empty, unreadable, mislabelled or malformed.

    The message names the offending source (path, column, class) and says how to fix it. It subclasses
    ``ValueError`` so callers that catch ``ValueError`` keep working.

    Example:
        >>> from finetuner.data import DataError, load_data
        >>> try:
        ...     load_data("no/such/folder")
        ... except DataError as error:
        ...     print(error)  # doctest: +ELLIPSIS
        no such file or folder: ...
    """
