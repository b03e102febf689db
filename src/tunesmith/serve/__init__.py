"""tunesmith.serve"""
