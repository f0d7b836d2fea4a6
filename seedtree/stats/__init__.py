"""Independence battery (issue 6): interleaved multi-stream sources, own tests, external batteries."""
