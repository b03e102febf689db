"""tunesmith.webui"""
