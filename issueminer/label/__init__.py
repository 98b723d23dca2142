"""Label: rounds and annotation sessions, agreement, adjudication, taxonomy merges and the
annotation web app. Uses collect and the ground, never analyse or cli."""
