"""payrules: payer policy rules for massage, manual therapy and chiropractic claims."""

__version__ = "0.1.0"
