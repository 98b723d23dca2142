"""Analyse: the study's tables and figures, the classifier, the report, the replication
package and study comparison. Uses label, collect and the ground, never cli."""
