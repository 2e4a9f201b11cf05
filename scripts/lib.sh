# Helpers the project's scripts share (sourced, not run).

need() { # need COMMAND DEBIAN-PACKAGE: install the package when the command is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2 (for $1)" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

need_duckdb() { # DuckDB's Python package: bench/file_mode's second baseline
  python3 -c 'import duckdb' 2>/dev/null && return 0
  echo "installing duckdb (Python)" >&2
  python3 -m pip install --quiet duckdb==2.0.1 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages duckdb==2.0.1
}
