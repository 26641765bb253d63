"""carelens.network"""
