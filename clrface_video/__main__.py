"""`python -m clrface_video ...`: the same commands as the `clrface-video` script, without an install."""
from .cli import main

if __name__ == "__main__":
    main()
