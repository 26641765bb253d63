"""carelens.privacy"""
