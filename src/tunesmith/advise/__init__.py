"""tunesmith.advise"""
