"""Fleet domain logic for the agent-orch sample app: vehicles and their utilization."""

VEHICLES = [
    {"id": "TRK-001", "kind": "truck", "driving_hours": 6.5, "shift_hours": 8.0},
    {"id": "VAN-014", "kind": "van", "driving_hours": 3.0, "shift_hours": 8.0},
    {"id": "CAR-102", "kind": "car", "driving_hours": 0.0, "shift_hours": 0.0},
]


def utilization(vehicle):
    """Share of the shift spent driving, 0.0 when the vehicle had no shift."""
    if vehicle["shift_hours"] == 0:
        return 0.0
    return round(vehicle["driving_hours"] / vehicle["shift_hours"], 3)


def fleet_summary(vehicles):
    """The numbers the dashboard shows."""
    active = [v for v in vehicles if v["shift_hours"] > 0]
    average = sum(utilization(v) for v in active) / len(active) if active else 0.0
    return {
        "vehicles": len(vehicles),
        "active": len(active),
        "average_utilization": round(average, 3),
    }
