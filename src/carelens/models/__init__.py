"""carelens.models"""
