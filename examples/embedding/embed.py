"""Check a visit from billing software before the claim goes out.

    python examples/embedding/embed.py      (from the repository root)

Loads the rule files under examples/, judges three visits given as dicts (the shape of a JSON
sessions file), and prints each line's decision with the reasons a biller would read.
"""

import payrules

rules = payrules.load("examples")  # every .payer file under examples/; raises CompileError with located diagnostics

visits = [
    {
        "session_id": "V-2001", "patient_id": "P-8001", "date": "2024-05-06", "payer": "MERIDIAN",
        "provider_npi": "1328719467", "provider_credential": "DC",
        "lines": [
            {"code": "97140", "units": 2, "minutes": 30, "charge": "70.00", "diagnoses": ["M54.2"]},
            {"code": "97124", "units": 1, "minutes": 15, "charge": "30.00", "diagnoses": ["M54.2"]},
        ],
    },
    {
        "session_id": "V-2003", "patient_id": "P-8003", "date": "2024-05-07", "payer": "MERIDIAN",
        "provider_npi": "1328719467", "provider_credential": "DC",
        "lines": [{"code": "97140", "units": 1, "minutes": 15, "charge": "40.00"}],
    },
    {
        "session_id": "V-2002", "patient_id": "P-8002", "date": "2024-05-06", "payer": "LAKESIDE",
        "provider_npi": "1328719467", "provider_credential": "LMT",
        "lines": [{"code": "97124", "units": 4, "minutes": 60, "charge": "120.00", "modifiers": ["XX9"]}],
    },
]

# Earlier visits are counted by same-day rules and period limits but not judged again.
history = [
    {
        "session_id": "V-1999", "patient_id": "P-8001", "date": "2024-05-06", "payer": "MERIDIAN",
        "provider_npi": "1184029555", "provider_credential": "DC",
        "lines": [{"code": "98941", "charge": "55.00"}],
    },
]

report = rules.check(visits, history=history)

for session in report.sessions:
    print(f"{session.session_id} ({session.payer_name})")
    for line in session.lines:
        print(f"  line {line.line} {line.code}: {line.status}, allowed ${line.allowed / 100:.2f}")
        for reason in line.reasons:
            print(f"    CARC {reason.carc} from {reason.file}:{reason.line}: {reason.message}")
for error in report.errors:
    print(f"not judged: {error.origin} {error.message}")
print(f"summary: {report.summary.to_dict()}")
