"""carelens.demo"""
