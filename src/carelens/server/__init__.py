"""carelens.server"""
