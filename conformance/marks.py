"""Markers shared by the test modules."""

import pytest

# The Azure OpenAI routes (issue 3) are served: their tests run as ordinary tests.
AZURE_OPENAI = pytest.mark.azure_openai
