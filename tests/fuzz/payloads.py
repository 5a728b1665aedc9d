"""Code that would leave a marker file behind if bmc ever executed text from a `.bm` file.

Each payload names its input's marker, `FUZZMARK_<id>`: by absolute path (in the markers folder) where the text may
hold slashes, and relative to the worker's working directory in file names, which cannot. The harness looks for
markers after every input; one found is the outcome `code_execution` for the input it names.

The payloads aim at every place `.bm` text reaches generated code: Python (a string or comment of the generated
module that a newline, a carriage return or a quote would end early), Jinja2 templates, and the C of the CUDA
target (a constructor runs when the compiled library is loaded).
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "FUZZMARK_"
C_FUNCTION = "bmc_fuzz_payload"  # every C payload defines it: found outside a comment or string, it is code


def marker_name(job_id: str) -> str:
    return f"{PREFIX}{job_id}"


def python(target: str) -> list[str]:
    """Python statements that create `target`, each preceded by something that could end a comment or string."""
    call = f"__import__('os').system('touch {target}')"
    return [
        f"\n{call}\n",
        f"\r{call}\r",
        f"\r\n{call}\r\n",
        f"'\n{call}\n'",
        f"\"\"\"\n{call}\n\"\"\"",
        f"'; {call}; '",
        f"\"); {call}; (\"",
        f"\\\n{call}",
        f"\x0c{call}",
        f"\u2028{call}",
        f"{{{{ cycler.__init__.__globals__.os.system('touch {target}') }}}}",  # Jinja2, were .bm text a template
        f"{{% set x = cycler.__init__.__globals__.os.system('touch {target}') %}}",
    ]


def c(target: str) -> list[str]:
    """C that runs when the compiled CUDA library is loaded, after what could end a `//` comment or a string."""
    ctor = _constructor(target)
    return [f"\n{ctor}\n", f"\"; {ctor} static const char* bmc_fuzz_s = \"", f"*/ {ctor} /*", f"\\\n{ctor}"]


def _constructor(target: str) -> str:
    return f"__attribute__((constructor)) static void {C_FUNCTION}(void) {{ system(\"touch {target}\"); }}"


def all_payloads(markers: Path, job_id: str) -> list[str]:
    target = str(markers / marker_name(job_id))
    return python(target) + c(target)


def file_names(job_id: str) -> list[str]:
    """File names (no slashes) that would run code if pasted into generated source unescaped."""
    target = marker_name(job_id)
    call = f"__import__('os').system('touch {target}')"
    ctor = _constructor(target)
    return [f"x\n{call}\n#.bm", f"x\r{call}\r#.bm", f"x'+{call}+'.bm", f"x\"+{call}+\".bm", f"{{{{{call}}}}}.bm",
            f"x\n{ctor}\n#define BMC_FUZZ_REST", f"x\r{ctor}\r#define BMC_FUZZ_REST", f"x*/ {ctor} /*.bm",
            f"x\"; {ctor} static const char* bmc_fuzz_s = \".bm"]  # (the #define swallows the rest of the line)
