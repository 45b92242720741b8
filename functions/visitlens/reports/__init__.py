"""Visit statistics: hourly rollups per site and local hour, the report queries, the live monitor."""
