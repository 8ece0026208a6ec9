"""On-disk dataset format, image readers, the input pipeline and the tool."""
