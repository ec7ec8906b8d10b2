"""Write docs/lifecycle.md from handrail.lifecycle.TRANSITIONS."""

from pathlib import Path

from handrail.lifecycle import render_markdown

TARGET = Path(__file__).resolve().parent.parent / "docs" / "lifecycle.md"

if __name__ == "__main__":
    TARGET.write_text(render_markdown())
    print(f"wrote {TARGET}")
