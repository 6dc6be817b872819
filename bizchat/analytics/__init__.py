"""Analytics: stats (Ibis -> DataFrame) and charts (DataFrame -> plotly figure)."""
