"""carelens.imaging"""
