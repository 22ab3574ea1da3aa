import unittest

from fleet import fleet_summary, utilization


class UtilizationTest(unittest.TestCase):
    def test_share_of_shift_spent_driving(self):
        self.assertEqual(utilization({"driving_hours": 6.0, "shift_hours": 8.0}), 0.75)

    def test_no_shift_means_zero(self):
        self.assertEqual(utilization({"driving_hours": 0.0, "shift_hours": 0.0}), 0.0)


class SummaryTest(unittest.TestCase):
    def test_counts_only_vehicles_with_a_shift_as_active(self):
        summary = fleet_summary(
            [
                {"driving_hours": 4.0, "shift_hours": 8.0},
                {"driving_hours": 0.0, "shift_hours": 0.0},
            ]
        )
        self.assertEqual(summary, {"vehicles": 2, "active": 1, "average_utilization": 0.5})

    def test_empty_fleet(self):
        self.assertEqual(
            fleet_summary([]), {"vehicles": 0, "active": 0, "average_utilization": 0.0}
        )


if __name__ == "__main__":
    unittest.main()
