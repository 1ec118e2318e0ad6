"""The command-line tools: the ``cosmos-kernels`` subcommands (one module each), the benchmark cases
and the distributed profiler. Nothing below imports from here."""
