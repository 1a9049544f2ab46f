"""Stock coming in: code files read (`parsing` over `file_encoding`, `file_layouts` and `code_lines`) and
imported as sealed batches (`importing`, `batches`), serial ranges added as segments (`segments`)."""
