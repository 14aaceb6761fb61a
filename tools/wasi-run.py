#!/usr/bin/env python3
"""Cargo runner for wasm32-wasip1 test binaries: runs the module under Wasmtime (PyPI `wasmtime`).

Used as CARGO_TARGET_WASM32_WASIP1_RUNNER so that pure crates run their native tests on wasm32 too
and prove both targets agree. The current directory is preopened because cargo runs tests from the
crate directory.
"""
import sys

import wasmtime


def main() -> int:
    module_path, args = sys.argv[1], sys.argv[1:]
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = args
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.inherit_env()
    wasi.preopen_dir(".", ".")
    store.set_wasi(wasi)
    module = wasmtime.Module.from_file(engine, module_path)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except wasmtime.ExitTrap as exit:
        return exit.code
    except wasmtime.Trap as trap:
        print(f"wasm trap: {trap}", file=sys.stderr)
        return 101
    return 0


if __name__ == "__main__":
    sys.exit(main())
