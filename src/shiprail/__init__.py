"""shiprail: releases through explicit, gated phases, with nothing reaching all users by surprise."""

__version__ = "0.1.0"
